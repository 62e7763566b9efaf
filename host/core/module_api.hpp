// What lrsmeta's backend modules (liblrsmeta_cuda.so, liblrsmeta_mpi.so; host/backends) use of the
// library beyond its public API. liblrsmeta.so exports these for them; they are not part of its
// API and may change with any release (a module is loaded only by the library it was built with).
#pragma once

#if defined(LRSMETA_STATIC_DEFINE) || defined(_WIN32)
#define LRSMETA_MODULE_API
#else
#define LRSMETA_MODULE_API __attribute__((visibility("default")))
#endif
