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
