"""Differential privacy per person (docs/privacy.md rules 22-25): the contribution bound, which events
are kept, per-person sensitivity of every preprocessing statistic, person canaries, the accounting."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from tabsynth.distributed.runtime import Runtime
from tabsynth.errors import PrivacyConfigError, PrivacyWarning
from tabsynth.metadata import ColumnSpec, Metadata
from tabsynth.privacy import histograms as hg
from tabsynth.privacy.accountant import Accountant, gaussian_rdp, rdp_to_dp
from tabsynth.privacy.config import DPConfig
from tabsynth.privacy.fit import PrivateFit
from tabsynth.privacy.persons import (PersonUnit, count_grid, count_law, count_persons, dp_max_events, events_histogram,
                                      events_per_person, keep_events, noisy_cut_shares, person_weights, plan_persons)
from tabsynth.privacy.preprocessing import category_counts, private_transformer, selection_threshold
from tabsynth.privacy.randomness import reproducible_noise

K = 8


def _events(seed: int = 0, persons: int = 60) -> pd.DataFrame:
    """Persons with 1..12 events (person 0 has one, person 1 has 20, all of one category)."""
    rng = np.random.default_rng(seed)
    sizes = np.r_[1, 20, rng.integers(1, 13, persons - 2)]
    pid = np.repeat(np.arange(persons), sizes)
    n = len(pid)
    cat = pd.Series(rng.choice(["a", "b", "c", "d"], n), dtype=object)
    cat[pid == 1] = "b"
    cat[rng.random(n) < 0.1] = None
    num = np.round(rng.lognormal(3.0, 1.0, n), 2)
    num[rng.random(n) < 0.1] = np.nan
    num[pid == 1] = 37.5
    return pd.DataFrame({"pid": pid, "day": rng.permutation(n), "cat": cat, "num": num})


def _statistics(df: pd.DataFrame, weighted: bool = True) -> dict[str, np.ndarray]:
    """Every statistic of the per-person preprocessing release before noise, on fixed grids."""
    kept = df[keep_events(df["pid"], K, "thin", order=df["day"])]
    w = person_weights(kept["pid"]) if weighted else np.ones(len(kept))
    x = kept["num"].to_numpy()
    present = ~np.isnan(x)
    missing = float(w[~present].sum())
    zoom = hg.Grid(np.linspace(0.0, 60.0, hg.ZOOM_BINS + 1), zero_cell=True, clip=False)
    return {
        "person_count": np.array([float(count_persons(PersonUnit(df["pid"])))]),
        "events_per_person": events_histogram(events_per_person(df["pid"])),
        "cat": category_counts(kept["cat"], ["a", "b", "c", "d"], w),
        "num_round_1": np.append(hg.first_grid("numerical", None).count(x[present], w[present]), missing),
        "num_zoom": zoom.count(x[present], w[present]),
        "num_public_bounds": hg.first_grid("numerical", (0.0, 100.0)).count(x[present], w[present]),
    }


@pytest.mark.parametrize("person", [0, 1], ids=["one event", "cut to the bound"])
def test_removing_one_person_moves_each_statistic_by_at_most_one(person):
    df = _events()
    full, without = _statistics(df), _statistics(df[df["pid"] != person])
    assert (df["pid"] == 1).sum() > K  # person 1 has more than the bound: K of their events count
    for name in full:
        diff = full[name] - without[name]
        assert np.linalg.norm(diff) <= 1 + 1e-9 and np.abs(diff).sum() <= 1 + 1e-9, name
    # without the weights the same person moves a count by the K events they keep
    rows = _statistics(df, weighted=False)["cat"] - _statistics(df[df["pid"] != person], weighted=False)["cat"]
    assert np.linalg.norm(rows) == pytest.approx(1.0 if person == 0 else K)


def test_the_release_sums_weights_to_the_person_count():
    """Through the whole release (no noise): every categorical and numeric statistic holds one unit
    of weight per person, the missing cell included."""
    df = _events()
    kept = df[keep_events(df["pid"], K, order=df["day"])]
    meta = Metadata([ColumnSpec("pid", "id"), ColumnSpec("day", "integer"), ColumnSpec("cat", "categorical"),
                     ColumnSpec("num", "numerical")])
    acc = Accountant(1.0, 1e-5)
    stats = private_transformer(kept, meta, acc, None, n_hat=60, max_modes=3, max_categories=10,
                                rng=np.random.default_rng(0), noise_rng=np.random.default_rng(0),
                                weights=person_weights(kept["pid"]), max_cells=K)
    for column in ("cat", "num", "day"):
        assert sum(stats.slot_counts[column]) == pytest.approx(60.0), column
    with pytest.raises(PrivacyConfigError, match="one value in"):
        private_transformer(kept, meta, acc, None, n_hat=60, max_modes=3, max_categories=10,
                            rng=np.random.default_rng(0), noise_rng=np.random.default_rng(0), weights=np.ones(3))


# --- person canaries -----------------------------------------------------------------------------
def _canary_table(spread: bool) -> pd.DataFrame:
    """300 persons with 1-3 events of a, b, c; plus one person with 30 events of ZZ (or 30 persons
    with one ZZ event each)."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 4, 300)
    pid = np.repeat(np.arange(300), sizes)
    base = pd.DataFrame({"pid": pid, "day": np.arange(len(pid)), "c": rng.choice(list("abc"), len(pid))})
    canary_pid = np.arange(300, 330) if spread else np.full(30, 300)
    canary = pd.DataFrame({"pid": canary_pid, "day": np.arange(30), "c": "ZZ"})
    return pd.concat([base, canary], ignore_index=True)


def _fit(df: pd.DataFrame, seed: int, persons: bool, max_events: int | None = None):
    meta = Metadata([ColumnSpec("pid", "id"), ColumnSpec("day", "id"), ColumnSpec("c", "categorical")])
    unit = PersonUnit(df["pid"], order=df["day"], max_events=max_events) if persons else None
    with reproducible_noise(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        fit = PrivateFit.begin(DPConfig(10.0), df, meta, Runtime(), persons=unit)
        events = fit.persons.select(df) if persons else df
        transformer, _ = fit.transformer(events, max_categories=20, seed=0)
    return fit, transformer.encoder_of("c").categories


def _threshold_and_std(fit: PrivateFit) -> tuple[float, float]:
    details = fit.statement(None).parts["preprocessing"].details
    return details["partition_selection_threshold"], details["noise_stds"]["c"][0]


@pytest.mark.parametrize("max_events", [None, 30], ids=["dp bound", "bound 30"])
def test_one_persons_thirty_events_never_select_their_category(max_events):
    table = _canary_table(spread=False)
    for seed in range(4):
        fit, categories = _fit(table, seed, persons=True, max_events=max_events)
        tau, std = _threshold_and_std(fit)
        assert tau < 30 - 4 * std  # 30 rows would pass: the threshold allows a 30-person category
        assert "ZZ" not in categories and {"a", "b", "c"} <= set(categories)
    # counted per row, the same 30 events pass partition selection
    row_fit, per_row = _fit(table, 0, persons=False)
    assert "ZZ" in per_row
    assert "one-row adjacency" in row_fit.statement(None).composition  # and it says it protects a row


def test_thirty_persons_with_one_event_each_select_their_category():
    fit, categories = _fit(_canary_table(spread=True), 0, persons=True)
    tau, std = _threshold_and_std(fit)
    assert tau < 30 - 4 * std
    assert "ZZ" in categories


def test_the_selection_threshold_recomputes_from_published_details():
    fit, _ = _fit(_canary_table(spread=False), 0, persons=True)
    spent = fit.statement(None)
    k = spent.parts["events_per_person"].details["max_events_per_person"]
    delta_col = spent.parts["partition_selection"].details["columns"]["c"]
    tau, std = _threshold_and_std(fit)
    assert tau == pytest.approx(selection_threshold(std, delta_col, k))
    # a unit over k cells needs a higher threshold than a row, and the bound on the canary holds:
    # Q(t) + (k - 1) Q(t + 1/std) <= delta for the published threshold
    from scipy.stats import norm
    t = (tau - 1) / std
    assert tau > selection_threshold(std, delta_col, 1)
    assert norm.sf(t) + (k - 1) * norm.sf(t + 1 / std) <= delta_col * (1 + 1e-6)


# --- accounting ------------------------------------------------------------------------------------
def test_the_bounds_epsilon_recomputes_and_the_two_releases_fill_the_share():
    fit, _ = _fit(_canary_table(spread=False), 0, persons=True)
    spent = fit.statement(None)
    part = spent.parts["events_per_person"]
    delta_rdp = part.delta
    assert part.details["l2_sensitivity"] == 1.0
    assert part.epsilon == pytest.approx(rdp_to_dp(gaussian_rdp(part.details["noise_std"]), delta_rdp))
    pre = spent.parts["preprocessing"]
    both = [a + b for a, b in zip(gaussian_rdp(pre.details["noise_multiplier"]),
                                  gaussian_rdp(part.details["noise_multiplier"]))]
    share = rdp_to_dp(gaussian_rdp(fit.accountant.preprocessing_noise(pre.details["share_of_epsilon"], 1.0)),
                      delta_rdp)
    assert rdp_to_dp(both, delta_rdp) == pytest.approx(share, rel=1e-4)
    assert "one-person adjacency" in spent.composition
    assert spent.epsilon <= 10.0


def test_plan_is_a_function_of_the_schema():
    meta = Metadata([ColumnSpec("pid", "id"), ColumnSpec("c", "categorical")])
    a, b = Accountant(1.0, 1e-5), Accountant(1.0, 1e-5)
    (pa, ba), (pb, bb) = plan_persons(meta, a, 0.35), plan_persons(meta, b, 0.35)
    assert (pa.noise_multiplier, ba.noise_multiplier) == (pb.noise_multiplier, bb.noise_multiplier)
    with pytest.raises(PrivacyConfigError, match="no modelled column"):
        plan_persons(Metadata([ColumnSpec("pid", "id")]), a, 0.35)


# --- the contribution bound --------------------------------------------------------------------------
def _sequence() -> pd.DataFrame:
    """Person 7 has ten events, shuffled, ordered by ``t``; person 3 has two."""
    df = pd.DataFrame({"pid": [7] * 10 + [3] * 2, "t": list(range(10)) + [0, 1]})
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.mark.parametrize("policy, expected", [("thin", [0, 3, 6, 9]), ("first", [0, 1, 2, 3])])
def test_a_person_over_the_bound_keeps_the_chosen_events(policy, expected):
    df = _sequence()
    kept = df[keep_events(df["pid"], 4, policy, order=df["t"])]
    assert sorted(kept.loc[kept["pid"] == 7, "t"]) == expected
    assert sorted(kept.loc[kept["pid"] == 3, "t"]) == [0, 1]  # under the bound: all kept


def test_a_random_window_keeps_consecutive_events():
    df = _sequence()
    starts = set()
    for seed in range(20):
        t = sorted(df.loc[keep_events(df["pid"], 4, "window", order=df["t"], rng=np.random.default_rng(seed))
                          & (df["pid"] == 7), "t"])
        assert t == list(range(t[0], t[0] + 4))
        starts.add(t[0])
    assert len(starts) > 2


def test_thinning_spans_every_sequence():
    for n in range(1, 30):
        for k in range(1, n + 1):
            keep = keep_events(np.zeros(n, int), k, "thin")
            assert keep.sum() == k and keep[0] and (keep[-1] or k == 1)


def test_the_dp_bound_and_cut_shares_follow_the_noisy_histogram():
    rng = np.random.default_rng(0)
    counts = np.r_[rng.integers(1, 6, 5000), np.full(20, 200)]  # 99.6% have at most 5 events
    hist = events_histogram(counts)
    assert dp_max_events(hist, 1.0, len(counts)) == 5
    events, persons = noisy_cut_shares(hist, 1.0, len(counts), 5)
    exact_events = (counts - 5).clip(0).sum() / counts.sum()
    assert persons == pytest.approx(20 / 5020, rel=1e-6)
    assert events == pytest.approx(exact_events, rel=0.1)
    assert noisy_cut_shares(hist, 1.0, len(counts), 256) == (0.0, 0.0)
    # noise in the empty top cells does not move the bound up
    noisy = hist + np.where(np.arange(len(hist)) > 20, 30.0, 0.0)
    assert dp_max_events(noisy, 1.0, len(counts)) == 5


def test_the_bound_applied_in_a_fit_is_published_and_cuts_long_persons():
    df = _canary_table(spread=False)
    fit, _ = _fit(df, 0, persons=True, max_events=5)
    bound = fit.persons
    kept = fit.persons.select(df)
    assert kept.groupby("pid").size().max() == 5 and (kept["pid"] == 300).sum() == 5
    assert len(bound.weights) == len(kept) and np.allclose(pd.Series(bound.weights).groupby(
        kept["pid"].to_numpy()).sum(), 1.0)
    details = fit.statement(None).parts["events_per_person"].details
    assert details["max_events_per_person"] == 5 and details["declared"] is True
    assert len(details["noisy_counts"]) == len(count_grid())
    assert 0.0 <= details["noisy_cut_share_events"] <= 1.0
    with pytest.raises(PrivacyConfigError, match="pass fit.persons.select"):
        fit.transformer(df, max_categories=20, seed=0)


def test_bad_person_keys_are_refused():
    with pytest.raises(PrivacyConfigError, match="missing values"):
        person_weights(pd.Series([1, None, 2]))
    with pytest.raises(PrivacyConfigError, match="missing from the subject table"):
        events_per_person([1, 2, 3], subjects=[1, 2])
    assert list(events_per_person([1, 1, 2], subjects=[1, 2, 5])) == [2, 1, 0]
    with pytest.raises(PrivacyConfigError, match="positive integer"):
        keep_events([1, 2], 0)


def test_the_count_law_of_an_exact_histogram_is_the_kept_counts_spread_in_their_cells():
    counts = np.array([0, 1, 1, 2, 5, 5, 6, 40, 300])
    law = count_law(events_histogram(counts).astype(float), 0.1, 30)
    assert law is not None and len(law) == 31 and np.isclose(law.sum(), 1.0)
    assert np.isclose(law[0], 1 / 9) and np.isclose(law[1], 2 / 9) and np.isclose(law[2], 1 / 9)
    assert np.isclose(law[5], 2 / 9) and np.isclose(law[6], 1 / 18) and np.isclose(law[7], 1 / 18)  # cell [6, 7]
    assert np.isclose(law[30], 2 / 9)  # 40 and 300 keep 30 events


def test_the_count_law_cuts_noise_at_zero_and_floors_cells_past_the_bound():
    noisy = np.zeros(len(count_grid()))
    noisy[0], noisy[3], noisy[4], noisy[-1] = 3.0, 50.0, -20.0, 3.0  # the first and last below the floor of 4
    law = count_law(noisy, 1.0, 10)
    assert law is not None and law[3] == 1.0
    assert count_law(-np.ones(len(count_grid())), 1.0, 10) is None


def test_on_a_small_table_the_count_law_is_a_fitted_smooth_law_not_the_clipped_noise():
    counts = np.maximum(np.round(np.random.default_rng(0).lognormal(np.log(6.0), 0.5, 300)), 1).astype(int)
    exact = events_histogram(counts).astype(float)
    noise = np.random.default_rng(1).normal(0.0, 37.0, len(exact))
    law = count_law(exact + noise, 37.0, 64, n_hat=300.0)  # no cell stands 4 deviations above the noise
    clipped = count_law(exact + noise, 37.0, 64)          # the histogram as it is
    mean = lambda p: float((np.arange(len(p)) * p).sum())  # noqa: E731
    assert abs(mean(law) - counts.mean()) < 0.2 * counts.mean()
    assert mean(clipped) > 1.3 * counts.mean()  # noise cut at zero spreads persons up to the bound
