"""Every profile table, in one place: what ``smoke``, ``quick`` and ``paper`` mean per chapter.

``paper`` is the paper's settings (and its official code's, where the text is silent; each
page's table shows both), with five seeds. ``quick`` is a miniature a 2-core CPU reruns in
minutes, and each entry says why it departs where it does. ``smoke`` tests the machinery; its
numbers mean nothing about the paper.
"""

from __future__ import annotations

from omnigrok.checks import PROFILES, check_profile

__all__ = ["PROFILES", "SEEDS", "TABLES", "seeds"]

# Seeds per profile (seeds 0, 1, ...), and where a chapter asks for more.
SEEDS = {"smoke": 2, "quick": 3, "paper": 5}
CHAPTER_SEEDS = {"claim4": {"quick": 5}}  # claim 4 is stated for 5 seeds (paper: P = 113)


def seeds(profile: str, chapter: str = "") -> list[int]:
    """The default seeds of ``chapter`` in ``profile``."""
    profile = check_profile(profile)
    return list(range(CHAPTER_SEEDS.get(chapter, {}).get(profile, SEEDS[profile])))


# Claim 1's reduced landscape: grid size over α in [0.1, 10], steps per task, MNIST batch and
# test images (0 = all 10k). ``paper`` is the official landscape notebook's MNIST setting: α =
# 10^linspace(-1, 1, 21), 1e4 steps at batch 100, a 2000-image test subset. That notebook
# reports the *best* test loss seen during training; we report the final one (a minimum over
# the test curve selects on test data), and the chapter's setup table shows both choices.
LANDSCAPE = {
    "smoke": dict(
        n_alpha=11, mnist_steps=150, mnist_batch=200, teacher_steps=400, n_test=500, n_log=10
    ),
    "quick": dict(
        n_alpha=11, mnist_steps=2000, mnist_batch=200, teacher_steps=5000, n_test=2000, n_log=40
    ),
    "paper": dict(
        n_alpha=21, mnist_steps=10000, mnist_batch=100, teacher_steps=20000, n_test=2000, n_log=100
    ),
}

# Claim 2's large-init MNIST run. The paper: 1e5 steps at γ = 0.01 (lr·γ·steps = 1). Decay
# alone cannot be compressed: the memorization phase takes ~2e3 steps whatever γ is, so the
# quick profile keeps 1e4 steps with a 20x larger γ (lr·γ·steps = 2: enough for the slowest
# run of its sweep to generalize).
LARGE_INIT = {
    "smoke": dict(steps=250, weight_decay=4.0, n_test=500, n_log=60),
    "quick": dict(steps=10_000, weight_decay=0.2, n_test=2000, n_log=150),
    "paper": dict(steps=100_000, weight_decay=0.01, n_test=0, n_log=250),
}

# Modular addition, shared by claims 3 and 4 so their unconstrained runs are the same runs in
# the store. The paper profile is Nanda et al.'s setup. On a 2-core CPU a P = 113 full-batch
# step costs ~0.1 s, so `quick` uses P = 59 with half the pairs for training and lr 3e-3,
# which groks within 1000 steps (measured on this CPU: seeds 0-2 reach 90% test accuracy at
# steps 385-564; held at 0.8 of the init norm, 95% at 103-144); every chapter's setup table
# shows the values used.
MODADD = {
    "smoke": dict(p=23, train_frac=0.5, lr=3e-3, steps=150, n_log=40),
    "quick": dict(p=59, train_frac=0.5, lr=3e-3, steps=1000, n_log=150),
    "paper": dict(p=113, train_frac=0.3, lr=1e-3, steps=20_000, n_log=300),
}

# Claim 3's modular-addition runs held at w_c at paper settings carry a stop rule
# (``RunConfig.stop_acc``): held at w_c they reach 95% test accuracy within a few hundred steps
# (the paper: ~280), and training the rest of the 2e4-step budget, 0.1 s a step on a CPU,
# would show nothing new; the free and held-high runs keep their whole budget, since their late
# behaviour is the point. The quick profile's runs were archived without one and keep it so.
HELD_STOP = {"paper": 0.99}

# The width study (the discussion's "bigger models may need bigger inits"): hidden widths of
# the MNIST MLP whose claim-1 landscapes are compared; 200 is the paper's.
WIDTHS = {
    "smoke": (50, 100, 200),
    "quick": (50, 100, 200, 400),
    "paper": (50, 100, 200, 400, 800),
}

# IMDb (paper Sec. 3.2). ``paper`` is the official code: 1000 reviews (750/250), 500 tokens,
# a 2-layer LSTM with embedding 64 and hidden 256, AdamW lr 3e-4, batch 50, clip 5, γ = 1 for
# the α = 6 run, 75,000 steps (5000 epochs of 15); its landscape holds the norm with Adam lr
# 1e-3 (the official landscape script) over 11 α. One step of that model takes 1.3 s on a
# 2-core CPU: a GPU's job. ``quick`` keeps the data, the vocabulary, the optimizer and the
# clip, and shrinks what costs: the first 50 known words of each review, embedding 16, hidden
# 32, lr 1e-3 so that the decay ln(α)/(lr·γ) fits in 3000 steps (measured on this CPU: α = 6,
# γ = 1 memorizes by step ~400 and rises above the α = 1 baseline's test accuracy after
# ~2200-3000 steps; 6 runs took 107 s).
IMDB = {
    "smoke": dict(
        n_train=150,
        n_test=50,
        seq_len=20,
        vocab=200,
        embed=8,
        hidden=12,
        lr=3e-3,
        weight_decay=4.0,
        steps=80,
        land_steps=40,
        n_alpha=5,
        n_log=20,
    ),
    "quick": dict(
        n_train=750,
        n_test=250,
        seq_len=50,
        vocab=1000,
        embed=16,
        hidden=32,
        lr=1e-3,
        weight_decay=1.0,
        steps=3000,
        land_steps=1000,
        n_alpha=7,
        n_log=80,
    ),
    "paper": dict(
        n_train=750,
        n_test=250,
        seq_len=500,
        vocab=1000,
        embed=64,
        hidden=256,
        lr=3e-4,
        weight_decay=1.0,
        steps=75_000,
        land_steps=5000,
        n_alpha=11,
        n_log=250,
    ),
}

# QM9 (claims 1-3 on the graph network, paper Sec. 3.2): the official runs read the first 100
# molecules (50/50) and train the NNConv network 11-32-16 at batch 32, lr 1e-3, no weight decay;
# the grokking runs for 1e5 steps (50,000 epochs of 2 batches), the landscape for 2000 (1000
# epochs) over 21 α. ``quick`` keeps the data, the model and the landscape and shortens the
# grokking runs; ``smoke`` shrinks everything.
QM9 = {
    "smoke": dict(
        n_train=20,
        n_test=20,
        batch=10,
        channels=(8, 4),
        edge_hidden=8,
        weight_decay=0.0,
        steps=80,
        land_steps=40,
        n_alpha=5,
        n_log=20,
    ),
    "quick": dict(
        n_train=50,
        n_test=50,
        batch=32,
        channels=(32, 16),
        edge_hidden=32,
        weight_decay=0.0,
        steps=10_000,
        land_steps=2000,
        n_alpha=7,
        n_log=100,
    ),
    "paper": dict(
        n_train=50,
        n_test=50,
        batch=32,
        channels=(32, 16),
        edge_hidden=32,
        weight_decay=0.0,
        steps=100_000,
        land_steps=2000,
        n_alpha=21,
        n_log=300,
    ),
}

# Claim 1 on modular addition (its own chapter): the α grid's size, 0.1 to 10 (0.8, the paper's
# constrained run, is added), and its steps per run; every other setting is the profile's
# modular addition above. smoke and quick train their MODADD steps (so the quick archive's runs
# keep their keys). At paper settings 6,000 steps, not claim 3's 20,000, chosen from P = 113
# held runs' curves (seed 0 at α = 0.1, 0.4, 2.5 and 10 for 6,000 steps; claim 3's 20,000-step
# runs held at α = 0.8 and 1): what the landscape reads (the last train and test loss and
# novel-pair test accuracy) stops moving long before. α = 0.1 never leaves chance (loss ln P);
# 0.4 plateaus at train accuracy 0.15 by step ~900; 0.8 and 1 fit by ~1,500, but for claim 3's
# stalled seed 3 at 0.8, whose accuracy settles by 4,925 (novel pairs 0.839 at step 6,119, 0.840
# at 20,000); 2.5 memorizes by ~750 while its test loss creeps up (36 at step 2,000, 46 at
# 6,000); 10 plateaus at train accuracy 0.89 by ~1,100. After that only transient Adam spikes
# move a fitted run (each of the three α = 1 runs dips once, to train accuracy 0.69-0.89 at step
# 11,045 or 13,881, and recovers), which a longer run is more, not less, likely to end on. The
# 60 runs take ~10 CPU-hours at 0.107 s a step (one thread), against ~36 at 20,000. No stop
# rule: every α is read at the same step.
MODADD_LANDSCAPE = {
    "smoke": dict(n_alpha=5, steps=MODADD["smoke"]["steps"]),
    "quick": dict(n_alpha=9, steps=MODADD["quick"]["steps"]),
    "paper": dict(n_alpha=11, steps=6000),
}

# The delay against γ over two decades (its own chapter): claim 2's profile (steps, test images,
# logging), γ on a log grid from ``low`` to ``high``. The quick grid is centred on claim 2's
# quick γ = 0.2 times 10^[0, 2]: at 1e4 steps, γ below 0.2 cannot bring the α = 8 norm to the
# zone within the budget (ln(w0/w_edge)/(lr γ) ~ 1e4 steps at 0.2); the paper grid spans the
# paper's γ = 0.01 to 1 at 1e5 steps.
DELAY_GAMMA = {
    "smoke": dict(low=2.0, high=32.0, n=3),
    "quick": dict(low=0.2, high=20.0, n=5),
    "paper": dict(low=0.01, high=1.0, n=5),
}

# The rivals (their own chapter), on claim 3's runs of modular addition and MNIST: every other
# setting is the profile's (MODADD, LARGE_INIT above), so the weight-decay and held runs are
# claim 3's. Grokfast's filter at its published settings: modular addition at
# ``gradfilter_ema``'s defaults (α 0.98, λ 2); MNIST as their ``main_mnist.py`` command (α 0.8,
# λ 0.1, with weight decay 2.0 where the baseline has 0.01: ``mnist_strong_decay``, run alone
# and with the filter). The logit-scale controls hold each example's logits at root-mean-square
# 1 over the classes: 3-4x their scale at Nanda's init (0.24-0.44 measured, P = 23 to 113),
# room for a correct class at p ≈ 0.97 (P = 59) to 0.99 (P = 113), never the growing logits
# that collapse a softmax. MNIST's outputs (MSE on one-hot targets) are held at √0.1, the
# root-mean-square of a one-hot target over 10 classes: the scale a perfect fit has.
RIVALS = {
    profile: dict(
        logit_scale=1.0,
        filter_alpha=0.98,
        filter_lamb=2.0,
        mnist_filter_alpha=0.8,
        mnist_filter_lamb=0.1,
        mnist_strong_decay=2.0,
        mnist_output_scale=0.3162,
    )
    for profile in PROFILES
}

# The (α, N) phase diagram (its own chapter): claim 2's run (steps, γ, test images, logging) at
# each init scale α and training-set size N. ``paper``: α on a log grid over a decade each way
# of the standard init (7 points, 0.1 to 10) and N from 100 to all 60,000 images, as the paper's
# diagram spans. ``quick`` keeps claim 2's quick run (1e4 steps at γ = 0.2: the α = 8 norm
# reaches the zone within the budget) on a 3 x 3 corner of that grid, α = 1, 3, 8 (8: claim 2's,
# so the α = 8, N = 1000 cell is claim 2's stored runs) and N = 200, 1000, 5000: 27 runs of 1e4
# steps, about claim 2's own sweep and a half (measured on a shared 2-core CPU: a stack of 3
# runs took 30 minutes; α = 8 memorizes at N = 200, fit by step ~300 and test acc 0.65-0.68 at
# 1e4 steps, and comprehends at N = 5000, test acc 0.8 by step ~3000 before train acc 0.99 at
# ~7000). ``smoke``: N <= 1000 reads the embedded subset.
PHASES = {
    "smoke": dict(alphas=(1.0, 8.0), n_train=(100, 400)),
    "quick": dict(alphas=(1.0, 3.0, 8.0), n_train=(200, 1000, 5000)),
    "paper": dict(
        alphas=(0.1, 0.2154, 0.4642, 1.0, 2.154, 4.642, 10.0),
        n_train=(100, 300, 1000, 3000, 10_000, 30_000, 60_000),
    ),
}

# Is representation learning the key? (paper Sec. 4; its own chapter.) Modular addition runs
# the profile's MODADD setting above with the Fourier probe. MNIST takes claim 1's landscape
# (its steps, batch, test images, logging) at every ``alpha_stride``-th α of claim 1's grid, so
# that its raw-image runs (m = 1) are claim 1's own, for input messiness m in ``messiness``
# (the official ``mnist-repr`` notebook sweeps m from 0 to 1). Not every m below 1 is
# interesting: even m = 0.5 leaves a class signal of 0.05 per pixel on all 784 pixels.
REPRESENTATION = {
    "smoke": dict(messiness=(0.0, 1.0), alpha_stride=5),
    "quick": dict(messiness=(0.0, 0.5, 1.0), alpha_stride=2),
    "paper": dict(messiness=(0.0, 0.25, 0.5, 0.75, 0.9, 1.0), alpha_stride=2),
}

TABLES = {
    "landscape": LANDSCAPE,
    "large_init": LARGE_INIT,
    "modadd": MODADD,
    "widths": WIDTHS,
    "imdb": IMDB,
    "qm9": QM9,
    "modadd_landscape": MODADD_LANDSCAPE,
    "delay_gamma": DELAY_GAMMA,
    "rivals": RIVALS,
    "phases": PHASES,
    "representation": REPRESENTATION,
}

# The tables each chapter's runs are drawn from: where its miniature departs from the paper.
CHAPTER_TABLES = {
    "claim1": ("landscape",),
    "claim2": ("large_init",),
    "claim3": ("large_init", "modadd"),
    "claim4": ("modadd",),
    "imdb": ("imdb",),
    "qm9": ("qm9",),
    "width": ("landscape", "widths"),
    "landscape_modadd": ("modadd", "modadd_landscape"),
    "delay_gamma": ("large_init", "delay_gamma"),
    "rivals": ("modadd", "large_init", "rivals"),
    "phases": ("large_init", "phases"),
    "representation": ("modadd", "landscape", "representation"),
}


def _value(v: object, key: str = "") -> str:
    if isinstance(v, tuple):
        return ", ".join(_value(x) for x in v)
    if key == "n_test" and v == 0:
        return "all"  # the tables' 0: every test example
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else f"{v:g}"


def departures(chapter: str, profile: str = "quick") -> str:
    """Where ``profile`` departs from ``paper`` for ``chapter``, read off the tables above:
    ``"3 seeds (paper 5); modadd: p 59 (paper 113), ..."``. Logging density is left out (it
    changes what is drawn, not what is trained)."""
    profile = check_profile(profile)
    if chapter not in CHAPTER_TABLES:
        raise ValueError(f"chapter must be one of {', '.join(CHAPTER_TABLES)}, got {chapter!r}")
    n, n_paper = len(seeds(profile, chapter)), len(seeds("paper", chapter))
    out = [f"{n} seeds" + (f" (paper {n_paper})" if n != n_paper else "")]
    for name in CHAPTER_TABLES[chapter]:
        mine, paper = TABLES[name][profile], TABLES[name]["paper"]
        if isinstance(mine, dict):
            diff = [
                f"{k} {_value(v, k)} (paper {_value(paper[k], k)})"
                for k, v in mine.items()
                if v != paper[k] and k != "n_log"
            ]
        else:
            diff = [f"{_value(mine)} (paper {_value(paper)})"] if mine != paper else []
        if diff:
            out.append(f"{name}: {', '.join(diff)}")
    return "; ".join(out)
