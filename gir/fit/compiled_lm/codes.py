"""The layout the compiled solvers share: status codes, workspace rows and scalars, phases, option and
result indices (plain Python: the JAX solver uses them without Numba).

Numba's disk cache of :mod:`gir.fit.compiled_lm.kernel` keys on that file alone and freezes these
values into its machine code: after changing one here, change kernel.py too (its cache is then rebuilt).
"""

# -- status codes: levmar's 0..4 and the ways a compiled fit stops without a solution ------------
RUNNING = -100
NO_STEP = -1  # the damping exceeds MAX_DAMPING (levmar: status 0 with its own message)
START_NOT_FINITE = -2  # the residual at the start is not finite or the model is undefined there
JACOBIAN_NOT_FINITE = -3  # a Jacobian with a non-finite value (levmar raises an InputError)

# -- workspace layout ----------------------------------------------------------------------------
# float rows (P each)
X, XT, H, MOVE, D, COL, G = range(7)
N_ROWS = 7
# boolean rows (P each)
FREE, OUT = range(2)
# float scalars
COST, LAM, NU = range(3)
N_FLOATS = 3
# integer scalars
NFEV, NJEV, STATUS, PHASE, EVALS, BUDGET, NEAR_F, NEAR_X, DEFICIENT = range(9)
N_INTS = 9
# phases: what the point asked for is
START, TRIAL, FINAL, DONE = range(4)
# options (a float vector)
FTOL, XTOL, GTOL, DAMPING, MAX_NFEV, FIXED_SCALE = range(6)
N_OPTIONS = 6
# per-fit float results
OUT_COST, N_OUT_FLOATS = 0, 1
# per-fit integer results
OUT_NFEV, OUT_NJEV, OUT_STATUS, OUT_DEFICIENT, N_OUT_INTS = 0, 1, 2, 3, 4
