"""Writes docs/options.md from the library's options table (lrsmeta/option_table.hpp), so that the
page lists what the library takes. Run it after changing the table:

    PYTHONPATH=build/python python3 scripts/options_doc.py > docs/options.md

python/tests/test_lrsmeta.py checks that the page is the table's."""
import math


def _range(row):
    if row["type"] == "choice":
        return " \\| ".join(row["choices"])
    if row["type"] == "flag":
        return "on \\| off"
    low, high = row["low"], row["high"]
    if row["type"] == "integer" and high >= 2 ** 31 - 1:
        high = math.inf
    def number(v):
        return "%g" % v
    if math.isinf(high):
        return (">" if row["low_open"] else ">=") + " " + number(low)
    return ("(" if row["low_open"] else "[") + number(low) + ", " + number(high) + (")" if row["high_open"] else "]")


def markdown(table):
    lines = [
        "# Options",
        "",
        "Every training option, as the library's options table (`include/lrsmeta/option_table.hpp`)",
        "describes it: its name (the C API's key and `model.json`'s, inside `\"privacy\"` for privacy's),",
        "`lrsmeta train`'s flag, `LRSRegressor`'s argument, its default and what it takes. The front ends",
        "and the model file are built from the table, and this page is written from it",
        "(`scripts/options_doc.py`). \"auto\" leaves the value to the fit; an option whose default is empty",
        "is left out unless given (a CLI flag not given, Python's `None`, not set in C).",
        "",
        "| name | CLI | Python | type | default | takes | what it does |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        cli = ("`--" + row["cli"] + "`") if row["cli"] else "(see text)"
        python = ("`" + row["python"] + "`") if row["python"] else "(see text)"
        takes = _range(row) + (" or auto" if row["unset"] == "auto" else "")
        help_text = row["help"] + (f" (auto: {row['unset_means']})" if row["unset"] == "auto" else
                                   f" (not given: {row['unset_means']})" if row["unset"] == "unset" else "")
        lines.append(f"| `{row['name']}` | {cli} | {python} | {row['type']} | {row['default'] or '-'} | {takes} | "
                     + help_text.replace("|", "\\|") + " |")
    lines += [
        "",
        "`private` is set by giving epsilon (the CLI's `--epsilon`, Python's `epsilon`); in C it is an",
        "option of its own (`lrsmeta_options_set_int(opts, \"private\", 1)`), as is setting `epsilon`.",
        "`--threads` is one of the CLI's data options, shared with `predict`, `eval` and `adapt`.",
        "The C++ struct `Options` has the same fields; its `rank` and `sparsity` default to 3 and 2 (the",
        "front ends start from `default_options()`, where they are auto), and its candidate lists",
        "(`rank_candidates`, `sparse_prior_scale_candidates`, ...) are C++ only.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from lrsmeta import _lrsmeta
    print(markdown(_lrsmeta.option_table()), end="")
