import numpy as np
import pandas as pd

from tabsynth.transform import NumericEncoder


def test_value_off_every_point_mass_gets_a_bounded_scalar():
    # modes fitted on values that hold only 10..13 (as DP draws from a coarse histogram can); 14 is in range
    enc = NumericEncoder.fit("x", pd.Series([10.0, 11.0, 12.0, 13.0] * 50), integer=True, bounds=(10, 14))
    assert enc.method == "mode" and max(enc.stds) < 1e-4  # every mode is a point mass
    block = enc.transform(pd.Series([14.0, 12.0]))
    assert np.abs(block[:, 0]).max() <= 1.0
    assert enc.inverse_transform(block, np.random.default_rng(0)).tolist() == [13, 12]


def test_few_distinct_values_get_a_point_mass_each():
    # a grade of 1-16 whose extremes are rare (education-num in Adult: 1 is held by 0.16% of rows)
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.integers(2, 16, 5000), [1] * 8, [16] * 8]).astype(float)
    enc = NumericEncoder.fit("grade", pd.Series(values), integer=True)
    assert enc.n_modes == 16 and enc.means.tolist() == list(range(1, 17)) and max(enc.stds) < 1e-4
    assert abs(enc.weights[0] - 8 / len(values)) < 1e-12
    block = enc.transform(pd.Series(values))
    assert np.array_equal(enc.inverse_transform(block, rng).to_numpy(), values)
    # one more distinct value than POINT_VALUES: back to spikes plus a mixture
    from tabsynth.transform.numerical import POINT_VALUES

    wide = NumericEncoder.fit("x", pd.Series(np.arange(POINT_VALUES + 1, dtype=float).repeat(3)), integer=True)
    assert wide.n_modes < POINT_VALUES + 1
