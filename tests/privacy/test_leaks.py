"""The DP guarantee end to end, tried as an attacker holding the published files, all rows but one
and the code: no replay, no data-dependent schema, no exact row count, nothing raw in histories,
and every published field on an allow-list (docs/privacy.md rules 3, 4, 15, 17)."""

import hashlib
import io
import json
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tabsynth as ts
from tabsynth.errors import PrivacyConfigError, PrivacyWarning
from tabsynth.privacy.ledger import Ledger
from tabsynth.privacy.randomness import reproducible_noise
from tabsynth.release import release

FAMILIES = {"ctgan": ts.CTGAN, "tvae": ts.TVAE, "tabularar": ts.TabularAR}


def test_every_registered_family_is_checked_for_leaks():
    from tabsynth.models.registry import model_names

    assert sorted(FAMILIES) == sorted(model_names())
TINY = dict(epochs=1, batch_size=200, seed=0, verbose=False, device="cpu")
N = 1237  # an unusual row count, easy to look for in published files


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "x": rng.normal(40, 8, N).round(1),
        "c": rng.choice(["a", "b", "c"], N, p=[0.5, 0.3, 0.2]),
        "k": rng.integers(0, 4, N),
        "flag": rng.choice([True, False], N),
    })


@pytest.fixture(scope="module", params=list(FAMILIES))
def dp_pair(request, table):
    """Two DP fits of the same table with the same seed, shared by the tests that only read them."""
    cls = FAMILIES[request.param]
    return request.param, _fit(cls, table), _fit(cls, table)


def _fit(cls, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        return cls(epsilon=1.0, **{**TINY, **kw}).fit(df)


def _digest(model, rows: int = 300) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(model.sample(rows, seed=1)).values.tobytes()).hexdigest()


# --- replay -------------------------------------------------------------------------------------
def test_same_seed_does_not_replay_a_dp_fit(dp_pair, table):
    name, a, b = dp_pair
    cls = FAMILIES[name]
    pa, pb = (m.privacy_spent().parts["preprocessing"].details["noisy_row_count"] for m in (a, b))
    # every DP statistic behind the encoders (not only the rounded count and bounds, which can
    # coincide by chance) is redrawn
    enc_a, enc_b = (json.dumps(m.transformer_.to_dict(), sort_keys=True, default=str) for m in (a, b))
    assert (pa, enc_a) != (pb, enc_b)
    assert _digest(a) != _digest(b)
    # the attack the default closes: seed-derived noise (test mode only) replays exactly
    with reproducible_noise(7):
        c = _fit(cls, table)
    with reproducible_noise(7):
        d = _fit(cls, table)
    assert _digest(c) == _digest(d)
    assert c.privacy_spent().reproducible and "NOT PRIVATE" in str(c.privacy_spent())
    assert not a.privacy_spent().reproducible and a.privacy_spent().randomness == "fresh"


def test_no_precision_or_discreteness_is_read_off_the_rows(dp_pair):
    """Without DP a one-decimal column comes back at one decimal and a four-valued one as its values;
    under DP neither is measured (no accounted statistic holds them): values keep full precision, and
    the whole-number column is one numeric kind with the others unless declared (rule 4a)."""
    _, model, _ = dp_pair
    x, k = model.transformer_.encoder_of("x"), model.transformer_.encoder_of("k")
    assert x.decimals is None and not x.discrete and k.decimals is None and not k.discrete
    assert model.metadata_.columns["k"].kind == "numerical"
    syn = model.sample(300, seed=0)
    assert not np.array_equal(syn["x"], syn["x"].round(1))
    assert not np.array_equal(syn["k"], syn["k"].round())


def test_neighbouring_tables_cannot_be_told_apart_by_a_rerun(table):
    # the attacker re-runs the published code and seed on D and on D minus the target row and looks
    # for the published digest: with fresh noise neither re-run reproduces it
    published = _digest(_fit(ts.CTGAN, table))
    reruns = {_digest(_fit(ts.CTGAN, df)) for df in (table, table.drop(index=5))}
    assert published not in reruns


def _release(df, tmp_path, name, **kw):
    ledger = Ledger(tmp_path / f"{name}.db")
    ledger.set_budget("d", 4.0, 1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        return release(df, 1.0, ledger, tmp_path / name, dataset_id="d", epochs=1, seed=11, report=False, **kw)


def test_two_releases_with_the_same_seed_differ_and_publish_no_seed(table, tmp_path):
    r1, r2 = _release(table, tmp_path, "r1"), _release(table, tmp_path, "r2")
    files = [r.manifest["files"]["data.csv.gz"]["sha256"] for r in (r1, r2)]
    assert files[0] != files[1]
    for r in (r1, r2):
        public = r.path / "public"
        assert "seed" not in r.manifest["model"]["settings"]
        assert not re.search(r"\bseed\b", (public / "model_card.md").read_text())
        if round(r.privacy.parts["preprocessing"].details["noisy_row_count"]) != N:  # noise can land on N
            assert not re.search(rf"\b{N}\b", (public / "manifest.json").read_text()
                                 + (public / "model_card.md").read_text())


def test_release_refuses_reproducible_noise_before_touching_anything(table, tmp_path):
    with reproducible_noise(0), pytest.raises(PrivacyConfigError, match="reproducible_noise"):
        release(table, 1.0, tmp_path / "l.db", tmp_path / "out", dataset_id="d")
    assert not (tmp_path / "l.db").exists() and not (tmp_path / "out").exists()


# --- schema ----------------------------------------------------------------------------------------
def _neighbours():
    """Tables whose value-read kinds flip when one row is added (id / categorical, 0/1 boolean /
    integer, date strings / text, day / second resolution)."""
    rng = np.random.default_rng(0)
    n = 400
    base = pd.DataFrame({
        "code": [f"c{i:04d}" for i in range(n)],
        "bin": rng.integers(0, 2, n),
        "when": pd.Series(pd.date_range("2021-01-01", periods=n, freq="D")).dt.strftime("%Y-%m-%d"),
        "stamp": pd.date_range("2021-01-01", periods=n, freq="D"),
        "v": rng.normal(size=n),
    })
    extra = pd.DataFrame({"code": ["c0001"] * 21, "bin": [2] * 21, "when": ["not a date"] * 21,
                          "stamp": [pd.Timestamp("2021-03-01 10:00:07")] * 21, "v": [0.5] * 21})
    plus = pd.concat([base, extra], ignore_index=True)
    return base, plus


def test_detection_flips_on_one_row_but_the_dp_schema_does_not():
    base, plus = _neighbours()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detected = [ts.Metadata.detect(df).to_dict() for df in (base, plus)]
    assert detected[0] != detected[1]  # the leak this closes
    fits = [_fit(ts.TVAE, df, batch_size=100) for df in (base, plus)]
    schemas = [m.metadata_.to_dict() for m in fits]
    assert schemas[0] == schemas[1]
    assert {c: s["kind"] for c, s in schemas[0]["columns"].items()} == {
        "code": "categorical", "bin": "numerical", "when": "categorical", "stamp": "datetime", "v": "numerical"}
    stated = fits[0].privacy_spent().assumptions
    assert stated["kinds"]["bin"] == "numerical" and "dtypes" in stated["schema"]


def test_dp_fit_warns_once_which_kinds_it_took_from_dtypes(table):
    with pytest.warns(PrivacyWarning, match=r"categorical: c; numerical: x, k") as caught:
        ts.TVAE(epsilon=1.0, **TINY).fit(table)
    assert sum("kinds were taken" in str(w.message) for w in caught) == 1
    meta = ts.Metadata.from_dtypes(table).with_column("k", kind="categorical")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*kinds were taken", category=PrivacyWarning)
        warnings.filterwarnings("ignore", message=".*changed these columns", category=PrivacyWarning)
        model = ts.TVAE(epsilon=1.0, **TINY).fit(table, metadata=meta)
    assert model.metadata_.columns["k"].kind == "categorical"
    assert "declared" in model.privacy_spent().assumptions["schema"]


# --- row count ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_only_the_noisy_row_count_is_used(name, table, tmp_path, monkeypatch):
    import tabsynth.privacy.fit as pre

    n_hat = N + 5000  # large enough for the default delta to be n_hat ** -1.5, not 1e-5
    real = pre.noisy_row_count

    def spy(df, release, noise_rng, runtime=None):
        real(df, release, noise_rng, runtime)  # the release still draws its noise
        release.details["noisy_row_count"] = n_hat
        return n_hat

    monkeypatch.setattr(pre, "noisy_row_count", spy)
    model = _fit(FAMILIES[name], table, batch_size=2000)
    spent = model.privacy_spent()
    train = spent.parts["training"].details
    assert model.n_rows_ == n_hat and train["expected_batch_size"] == 2000
    assert train["steps"] == -(-n_hat // 2000) and train["sample_rate"] == pytest.approx(1 / -(-n_hat // 2000))
    assert spent.delta == pytest.approx(n_hat ** -1.5)  # the default delta from the noisy count
    path = model.save(tmp_path / "m.tsyn")
    config = zipfile.ZipFile(path).read("config.json").decode()
    assert not re.search(rf"\b{N}\b", config)


# --- histories ----------------------------------------------------------------------------------------
def test_dp_history_holds_no_loss_on_real_rows(dp_pair, table):
    name, model, _ = dp_pair
    allowed = {"epoch", "epsilon", "marginal_loss"} | ({"generator_loss"} if name == "ctgan" else set())
    assert set(model.loss_history_.columns) <= allowed and "epsilon" in model.loss_history_
    plain = FAMILIES[name](**TINY).fit(table)
    assert set(plain.loss_history_.columns) - allowed  # the non-DP fit records its real-data losses


# --- partition selection ------------------------------------------------------------------------------
def test_public_spec_without_categories_is_charged_as_observed(table):
    meta = ts.Metadata.from_dtypes(table).with_column("c", domain_source="public")
    model = ts.CTGAN(epsilon=1.0, **TINY).fit(table, metadata=meta)
    parts = model.privacy_spent().parts
    assert "c" in parts["partition_selection"].details["columns"]
    assert "c" not in parts["preprocessing"].details["public_domains"]


# --- secure mode ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_secure_mode_trains_on_a_fresh_machine(name, table):
    a = _fit(FAMILIES[name], table, dp=ts.DPConfig(epsilon=1.0, secure_mode=True))
    b = _fit(FAMILIES[name], table, dp=ts.DPConfig(epsilon=1.0, secure_mode=True))
    assert a.privacy_spent().randomness == "secure" and a.privacy_spent().epsilon <= 1.0 + 1e-9
    assert _digest(a) != _digest(b)


# --- allow-list of everything published -------------------------------------------------------------------
#: Every field a saved DP model or a release's public manifest may hold; ``*`` stands for one key
#: (a column or part name), ``[]`` for list items. A new field fails until someone decides it is safe.
MODEL_FIELDS = """
format format_version tabsynth_version class n_rows state.{}
params.* params.*.[] params.dp.*
loss_history.epoch.[] loss_history.epsilon.[] loss_history.generator_loss.[] loss_history.marginal_loss.[]
transformer.params.* transformer.metadata.schema_version transformer.metadata.primary_key
transformer.metadata.columns.*.kind transformer.metadata.columns.*.dtype transformer.metadata.columns.*.nullable
transformer.metadata.columns.*.timezone
transformer.encoders.[].* transformer.encoders.[].*.[] transformer.encoders.[].numeric.*
transformer.encoders.[].numeric.*.[]
""".split()
PRIVACY_FIELDS = """
privacy.epsilon privacy.delta privacy.accountant privacy.composition privacy.randomness privacy.statement
privacy.unit privacy.unit_key
privacy.assumptions.schema privacy.assumptions.kinds.*
privacy.parts.*.name privacy.parts.*.epsilon privacy.parts.*.delta privacy.parts.*.mechanism
privacy.parts.*.details.noise_multiplier privacy.parts.*.details.sample_rate privacy.parts.*.details.steps
privacy.parts.*.details.noise_std privacy.parts.*.details.l2_sensitivity privacy.parts.*.details.share_of_epsilon
privacy.parts.preprocessing.details.noisy_row_count privacy.parts.preprocessing.details.partition_selection_threshold
privacy.parts.preprocessing.details.columns.*.statistic privacy.parts.preprocessing.details.columns.*.epsilon_alone
privacy.parts.preprocessing.details.public_domains.[]
privacy.parts.preprocessing.details.row_count_noise_std privacy.parts.preprocessing.details.noise_stds.*.[]
privacy.parts.preprocessing.details.changes.[].column privacy.parts.preprocessing.details.changes.[].what
privacy.parts.preprocessing.details.changes.[].material privacy.parts.preprocessing.details.changes.[].fix
privacy.parts.marginals.details.tables privacy.parts.marginals.details.one_way privacy.parts.marginals.details.two_way
privacy.parts.marginals.details.max_pair_cells privacy.parts.marginals.details.pairs.[]
privacy.parts.marginals.details.tables_above_noise
privacy.parts.training.details.* privacy.parts.partition_selection.details.columns.*
privacy.parts.events_per_person.details.grid.[] privacy.parts.events_per_person.details.quantile
privacy.parts.events_per_person.details.noisy_counts.[] privacy.parts.events_per_person.details.max_events_per_person
privacy.parts.events_per_person.details.declared privacy.parts.events_per_person.details.policy
privacy.parts.events_per_person.details.noisy_cut_share_events
privacy.parts.events_per_person.details.noisy_cut_share_persons
privacy.assumptions.person_kinds.* privacy.assumptions.event_kinds.*
privacy.parts.*.details.row_count_noise_std privacy.parts.*.details.noise_stds.*.[]
privacy.parts.preprocessing_persons.details.noisy_row_count
privacy.parts.preprocessing_persons.details.partition_selection_threshold
privacy.parts.preprocessing_events.details.partition_selection_threshold
privacy.parts.*.details.columns.*.statistic privacy.parts.*.details.columns.*.epsilon_alone
privacy.parts.*.details.public_domains.[] privacy.parts.*.details.changes.[].column
privacy.parts.*.details.changes.[].what privacy.parts.*.details.changes.[].material privacy.parts.*.details.changes.[].fix
""".split()
MANIFEST_FIELDS = """
format manifest_version release_id dataset_id created_at source_fingerprint source_fingerprint_note internal_files
budget.composition budget.*.epsilon budget.*.delta ledger.reservation_id ledger.reserved_at_event
model.name model.class model.settings.* model.settings.*.[] synthetic.rows synthetic.columns.[].[] versions.*
files.*.sha256 files.*.bytes
synthetic.unit synthetic.key synthetic.order_by synthetic.metadata synthetic.subjects.rows synthetic.events.rows
synthetic.subjects.columns.[].[] synthetic.events.columns.[].[] synthetic.subjects.files.[] synthetic.events.files.[]
""".split()
#: Every field of a two-table release's public metadata.json: the link and each column's kind, dtype
#: and nullability (never a domain read off the rows).
SEQUENCE_METADATA_FIELDS = """
format schema_version key order_by order_kind order_bounds.lower order_bounds.upper person_columns.[] event_columns.[]
non_decreasing.[]
persons.schema_version persons.primary_key persons.columns.*.kind persons.columns.*.dtype persons.columns.*.nullable
events.schema_version events.columns.*.kind events.columns.*.dtype events.columns.*.nullable
""".split()
#: Encoder fields that must be empty under DP: they would hold real values.
EMPTY_UNDER_DP = {"other_values", "other_weights"}


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        if not obj:
            yield path + ("{}",), obj
        for k, v in obj.items():
            yield from _leaves(v, path + (str(k),))
    elif isinstance(obj, list):
        if not obj:
            yield path + ("[]",), obj
        for v in obj:
            yield from _leaves(v, path + ("[]",))
    else:
        yield path, obj


def _allowed(path, patterns) -> bool:
    return any(len(p) == len(path) and all(a in ("*", b) for a, b in zip(p, path))
               for p in (tuple(q.split(".")) for q in patterns))


def _unlisted(obj, patterns) -> list[str]:
    # file names such as data.csv.gz hold dots: match them as one key
    return [".".join(p) for p, _ in _leaves(obj) if not _allowed(_split_files(p), patterns)]


def _split_files(path):
    return ("files", "*", path[-1]) if path and path[0] == "files" else path


def test_every_field_of_a_saved_dp_model_is_on_the_allow_list(dp_pair, tmp_path):
    name, model, _ = dp_pair
    path = model.save(tmp_path / "m.tsyn")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["config.json", "weights.pt"]
        config = json.loads(zf.read("config.json"))
        tensors = torch.load(io.BytesIO(zf.read("weights.pt")), weights_only=True)
    assert _unlisted(config, MODEL_FIELDS + PRIVACY_FIELDS) == []
    assert config["params"]["seed"] is None
    for enc in config["transformer"]["encoders"]:
        assert all(not enc.get(k) for k in EMPTY_UNDER_DP), enc["column"]
    prefixes = {"ctgan": ("generator.", "discriminator.", "extra.cond_counts"), "tvae": ("net.",),
                "tabularar": ("net.",)}[name]
    assert all(k.startswith(prefixes) for k in tensors)


def test_every_field_of_a_public_manifest_is_on_the_allow_list(table, tmp_path):
    r = _release(table, tmp_path, "rel")
    assert sorted(p.name for p in Path(r.path, "public").iterdir()) == [
        "data.csv.gz", "data.parquet", "manifest.json", "model_card.md"]
    assert _unlisted(r.manifest, MANIFEST_FIELDS + PRIVACY_FIELDS) == []
    settings = r.manifest["model"]["settings"]
    assert "seed" not in settings
    # the values used, not the None a default was left as
    used = r.manifest and r.privacy.parts["training"].details
    assert (settings["batch_size"], settings["epochs"]) == (used["expected_batch_size"], used["epochs"])
    assert settings["order"] == "fixed"  # the release default, TabularAR, under DP


def test_every_field_of_a_per_person_statement_is_on_the_allow_list():
    from tabsynth.distributed.runtime import Runtime
    from tabsynth.privacy.config import DPConfig
    from tabsynth.privacy.fit import PrivateFit
    from tabsynth.privacy.persons import PersonUnit

    rng = np.random.default_rng(0)
    pid = np.repeat(np.arange(200), rng.integers(1, 6, 200))
    events = pd.DataFrame({"pid": pid, "c": rng.choice(list("ab"), len(pid)), "x": rng.normal(50, 5, len(pid))})
    meta = ts.Metadata([ts.ColumnSpec("pid", "id"), ts.ColumnSpec("c", "categorical"), ts.ColumnSpec("x", "numerical")])
    fit = PrivateFit.begin(DPConfig(1.0), events, meta, Runtime(), persons=PersonUnit(events["pid"]))
    fit.transformer(fit.persons.select(events), max_categories=10, seed=0)
    statement = fit.statement({"schema": "given"}).to_dict()
    assert "events_per_person" in statement["parts"]
    assert _unlisted({"privacy": statement}, PRIVACY_FIELDS) == []


def test_every_field_of_a_two_table_release_is_on_the_allow_list(tmp_path):
    rng = np.random.default_rng(0)
    persons = pd.DataFrame({"id": np.arange(150), "sex": rng.choice(["f", "m"], 150), "age": rng.normal(50, 9, 150)})
    pid = np.repeat(persons["id"].to_numpy(), rng.integers(1, 5, 150))
    events = pd.DataFrame({"id": pid, "day": rng.integers(0, 300, len(pid)), "lab": rng.choice(["lo", "hi"], len(pid))})
    ledger = Ledger(tmp_path / "b.db")
    ledger.set_budget("d", 2.0, 1e-5, unit="person", key="id")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PrivacyWarning)
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        r = release(events, 1.0, ledger, tmp_path / "rel", dataset_id="d", subjects=persons, key="id",
                    order_by="day", epochs=1, report=False, embedding_dim=8, hidden=(8,))
    assert sorted(p.name for p in Path(r.path, "public").iterdir()) == [
        "data_events.csv.gz", "data_events.parquet", "data_subjects.csv.gz", "data_subjects.parquet",
        "manifest.json", "metadata.json", "model_card.md"]
    assert _unlisted(r.manifest, MANIFEST_FIELDS + PRIVACY_FIELDS) == []
    assert "seed" not in r.manifest["model"]["settings"]
    assert _unlisted(json.loads(r.metadata_path.read_text()), SEQUENCE_METADATA_FIELDS) == []


def test_allow_list_catches_a_new_field():
    assert _unlisted({"privacy": {"parts": {"training": {"details": {"x": 1}}}}}, PRIVACY_FIELDS) == []
    assert _unlisted({"loss_history": {"discriminator_loss": [0.5]}}, MODEL_FIELDS) == [
        "loss_history.discriminator_loss.[]"]


# --- two tables, the person as the unit ------------------------------------------------------------
_PRE = [f for f in PRIVACY_FIELDS if ".parts.preprocessing." in f]
TWO_TABLE_PRIVACY_FIELDS = PRIVACY_FIELDS + [
    f.replace(".parts.preprocessing.", f".parts.{part}.") for part in ("preprocessing_persons", "preprocessing_events")
    for f in _PRE] + ["privacy.assumptions.person_kinds.*", "privacy.assumptions.event_kinds.*"]
TWO_TABLE_FIELDS = """
two_tables.key two_tables.column.* two_tables.person_columns.[] two_tables.event_columns.[] two_tables.ids.*
two_tables.cap two_tables.cut_events two_tables.cut_persons two_tables.cut_shares.[] two_tables.rnn
two_tables.loss_history.epoch.[] two_tables.loss_history.epsilon.[] two_tables.n_rows two_tables.n_subjects
two_tables.has_persons two_tables.ids.alphabets.[] loss_history.{} two_tables.count_column
two_tables.rising.{} two_tables.rising.* two_tables.rising.*.[] two_tables.count_law.[] two_tables.count_law
two_tables.embedding_dim two_tables.hidden.[] two_tables.person_params.* two_tables.person_params.*.[]
two_tables.person_params.dp.*
""".split() + [f"two_tables.{f}" for f in MODEL_FIELDS if f.startswith("transformer.")] + [
    f"two_tables.{f}" for f in TWO_TABLE_PRIVACY_FIELDS]


def test_every_field_of_a_saved_two_table_dp_model_is_on_the_allow_list(tmp_path):
    rng = np.random.default_rng(0)
    persons = pd.DataFrame({"pid": np.arange(120), "sex": rng.choice(["f", "m"], 120), "age": rng.normal(50, 9, 120)})
    sizes = rng.integers(1, 6, 120)
    events = pd.DataFrame({"pid": np.repeat(persons["pid"], sizes), "day": rng.random(sizes.sum()) * 900,
                           "lab": rng.choice(["lo", "hi"], sizes.sum()), "x": rng.normal(0, 1, sizes.sum())})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PrivacyWarning)
        model = ts.TabularAR(epsilon=2.0, **TINY).fit(events, subjects=persons, key="pid", order_by="day")
    with zipfile.ZipFile(model.save(tmp_path / "m.tsyn")) as zf:
        config = json.loads(zf.read("config.json"))
        tensors = torch.load(io.BytesIO(zf.read("weights.pt")), weights_only=True)
    unlisted = _unlisted(config, MODEL_FIELDS + TWO_TABLE_PRIVACY_FIELDS + TWO_TABLE_FIELDS)
    assert unlisted == [], unlisted
    assert config["params"]["seed"] is None
    two = config["two_tables"]
    assert two["person_params"]["seed"] is None
    for enc in two["transformer"]["encoders"] + config["transformer"]["encoders"]:
        assert all(not enc.get(k) for k in EMPTY_UNDER_DP), enc["column"]
    # nothing read off the values: the origin, whole-number gaps and the id pattern are not learned
    assert two["column"]["origin"] == 0.0 and two["column"]["integer"] is False
    assert two["ids"]["style"] == "integer" and two["cut_events"] is None and two["cut_persons"] is None
    assert config["n_rows"] == two["n_subjects"] == model.n_subjects_  # the person model's count is the noisy one
    assert all(k.startswith(("events.", "persons.net.")) for k in tensors)
