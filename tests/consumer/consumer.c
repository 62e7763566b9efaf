/* A C program built against the installed package with pkg-config (C flags only). */
#include <lrsmeta/lrsmeta.h>
#include <stdio.h>

int main(void) {
  lrsmeta_options* options = NULL;
  if (lrsmeta_options_create(&options) != LRSMETA_OK) return 1;
  /* A bad option is refused with a message: the library is linked and answering. */
  const lrsmeta_status status = lrsmeta_options_set_int(options, "no_such_option", 1);
  lrsmeta_options_destroy(options);
  printf("C consumer: lrsmeta %s; a bad option gives status %d: %s\n", lrsmeta_version(), (int)status, lrsmeta_last_error());
  return status == LRSMETA_INVALID_ARGUMENT ? 0 : 2;
}
