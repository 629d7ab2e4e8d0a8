"""The standard pass names, the rewrite groups and the presets, declared in one place.

A name maps to ``"module:attribute"``: the decorated function that defines the
pass. :data:`gir.passes.PASSES` imports the module the first time the name is
looked up, so a pipeline string never depends on what was imported before.
This module imports nothing: adding a pass here costs no import time.
"""

from __future__ import annotations

#: Passes listed by name: name -> ``"module:attribute"`` of the function that defines it.
BUILTIN: dict[str, str] = {
    "inline": "gir.passes.inline:inline",
    "specialize": "gir.passes.specialize:specialize",
    "canonicalize": "gir.passes.canonicalize:canonicalize",
    "fold": "gir.passes.fold:fold",
    "cse": "gir.passes.cse:cse",
    "share": "gir.passes.cse:share",
    "flatten": "gir.passes.flatten:flatten",
    "binarize": "gir.passes.flatten:binarize",
    "dce": "gir.passes.dce:dce",
    "layout": "gir.passes.layout:layout",
    "jvp": "gir.passes.autodiff:jvp_pass",
    "vjp": "gir.passes.autodiff:vjp_pass",
}

#: Rewrite groups: name -> the names of its rewrites, in the order the driver tries them on a node.
#: The rewrites run together to a common fixed point; a member replaced by name
#: (``replace=True``) is replaced in its group too.
GROUPS: dict[str, tuple[str, ...]] = {
    "simplify": (
        "combine_constants",
        "drop_units",
        "mul_zero",
        "sub_self",
        "sub_constant",
        "neg_neg",
        "div_constant",
        "div_reciprocal",
        "pow_constant",
        "exp_log",
        "log_exp",
        "flip_flip",
        "where_known",
        "fold",  # simplify folds constants too, as identities make new ones
        "reduce_varying_part",
        "distribute_reduction",
    ),
}

#: The rewrites of groups that are not passes of :data:`BUILTIN`: each runs on its own by name
#: (``"mul_zero"``) but is listed only through its group.
RULES: dict[str, str] = {
    name: f"gir.passes.simplify:{name}" for name in GROUPS["simplify"] if name not in BUILTIN
}

#: Named pipelines. O2 assumes finite values (see docs/passes.md); specialize
#: does nothing unless parameters are fixed.
PRESETS: dict[str, str] = {
    "O0": "",
    "O1": "inline,fold,canonicalize,cse,dce",
    "O2": "inline,specialize,canonicalize,cse,simplify{finite_math},flatten,canonicalize,cse,"
    "simplify{finite_math},flatten,canonicalize,cse,share,dce",
}
