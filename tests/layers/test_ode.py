"""Neural ODE block: the solver against closed forms, identity at f = 0, training, saving."""

import keras
import numpy as np
import pytest
from conftest import tf_only

import kerascnn
from kerascnn.layers import ODEBlock, ODEFunction, odeint
from kerascnn.layers.ode import evaluations_per_step, norm_groups_for


def expm(a: np.ndarray, terms: int = 40) -> np.ndarray:
    """Matrix exponential by scaling and squaring of the Taylor series (float64)."""
    squarings = max(0, int(np.ceil(np.log2(max(np.abs(a).sum(axis=1).max(), 1e-12)))) + 1)
    scaled = a / 2.0**squarings
    result, term = np.eye(len(a)), np.eye(len(a))
    for k in range(1, terms):
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def linear_problem(seed=0, n=4):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.7, size=(n, n))
    h0 = rng.normal(size=(3, n))
    return a, h0, h0 @ expm(a).T  # rows: h(1) = expm(A) h(0)


def test_expm_reference_is_right():
    # Diagonalizable case: V diag(exp(l)) V^-1 (eigendecomposition) agrees with the series.
    a, _, _ = linear_problem()
    lam, v = np.linalg.eig(a)
    by_eig = (v @ np.diag(np.exp(lam)) @ np.linalg.inv(v)).real
    np.testing.assert_allclose(expm(a), by_eig, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_zero_function_is_the_identity(method):
    h0 = np.random.default_rng(1).normal(size=(2, 5, 5, 3)).astype("float32")
    out = odeint(lambda h, t: 0.0 * h, h0, 0.0, 1.0, steps=3, method=method)
    np.testing.assert_array_equal(out, h0)


def test_rk4_matches_the_matrix_exponential_and_has_order_four():
    a, h0, exact = linear_problem()

    def f(h, t):
        return h @ a.T

    errors = {}
    for steps in (5, 10, 20):
        approx = odeint(f, h0, 0.0, 1.0, steps=steps, method="rk4")
        errors[steps] = np.abs(approx - exact).max()
    assert errors[10] < 1e-5 * np.abs(exact).max()
    # Global error O(dt^4): halving the step divides the error by about 16.
    assert 12 < errors[5] / errors[10] < 20
    assert 12 < errors[10] / errors[20] < 20
    # Euler with as many steps is far off (the comparison can fail).
    euler = odeint(f, h0, 0.0, 1.0, steps=10, method="euler")
    assert np.abs(euler - exact).max() > 100 * errors[10]


@keras.saving.register_keras_serializable(package="kerascnn_tests")
class Linear(keras.layers.Layer):
    """f(h, t) = h A^T (ignores t)."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.a = self.add_weight(shape=(self.units, self.units), initializer="zeros", name="a")

    def call(self, h, t=0.0):
        return keras.ops.matmul(h, keras.ops.transpose(self.a))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_layer_with_linear_function_matches_the_matrix_exponential(tmp_path):
    a, h0, exact = linear_problem()
    block = ODEBlock(Linear(4), steps=10, method="rk4")
    block.build((None, 4))
    block.func.a.assign(a.astype("float32"))
    out = keras.ops.convert_to_numpy(block(h0.astype("float32")))
    np.testing.assert_allclose(out, exact, rtol=1e-4, atol=1e-4)
    assert block.evaluations == 40

    # Serializable with a custom function: config and .keras round trip keep the result.
    inputs = keras.Input((4,))
    model = keras.Model(inputs, block(inputs))
    path = tmp_path / "linear_ode.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(h0, verbose=0), out, rtol=1e-6, atol=1e-6)


def test_zero_init_block_is_the_identity_and_weights_make_it_not():
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 16)).astype("float32")
    block = ODEBlock(steps=3, method="rk4", zero_init=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(block(x)), x)
    trained_like = ODEBlock(steps=3, method="rk4")
    assert np.abs(keras.ops.convert_to_numpy(trained_like(x)) - x).max() > 1e-2


def test_function_is_conditioned_on_time():
    x = np.random.default_rng(3).normal(size=(1, 6, 6, 8)).astype("float32")
    f = ODEFunction()
    f0 = keras.ops.convert_to_numpy(f(x, t=0.0))
    f1 = keras.ops.convert_to_numpy(f(x, t=1.0))
    assert np.abs(f0 - f1).max() > 1e-4
    plain = ODEFunction(time_conditioned=False)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(plain(x, t=0.0)), keras.ops.convert_to_numpy(plain(x, t=1.0))
    )


def test_ode_block_trains_and_is_differentiable_through_the_solver():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0).astype("int32")
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    h = ODEBlock(steps=2, method="rk4", name="ode")(h)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    func_before = [keras.ops.convert_to_numpy(w).copy() for w in model.get_layer("ode").weights]
    losses = [float(model.train_on_batch(x, y)) for _ in range(15)]
    assert losses[-1] < 0.7 * losses[0], losses
    func_after = [keras.ops.convert_to_numpy(w) for w in model.get_layer("ode").weights]
    assert all(not np.array_equal(a, b) for a, b in zip(func_before, func_after, strict=True))


def test_odenet_keras_round_trip(tmp_path):
    model = kerascnn.zoo.create(
        "odenet", filters=8, steps=2, input_shape=(16, 16, 3), num_classes=4
    )
    x = np.random.default_rng(4).uniform(size=(2, 16, 16, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    path = tmp_path / "odenet.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    block = loaded.get_layer("ode_block")
    assert (block.steps, block.method) == (2, "rk4")


def test_resnet_variant_has_steps_times_the_block_parameters():
    def block_params(model):
        return sum(layer.count_params() for layer in model.layers if isinstance(layer, ODEFunction))

    kw = dict(filters=8, input_shape=(16, 16, 3), num_classes=4)
    ode = kerascnn.zoo.odenet(block="ode", steps=3, **kw)
    res = kerascnn.zoo.odenet(block="resnet", steps=3, **kw)
    f = ODEFunction(time_conditioned=False)
    f.build((None, 4, 4, 8))
    assert block_params(res) == 3 * f.count_params()
    ode_f = ODEFunction()
    ode_f.build((None, 4, 4, 8))
    assert ode.get_layer("ode_block").count_params() == ode_f.count_params()


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"steps": 0}, "steps"),
        ({"steps": 2.0}, "steps"),
        ({"method": "rk45"}, "method"),
        ({"t1": float("nan")}, "t1"),
        ({"func": "relu"}, "func"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ODEBlock(**kwargs)


def test_evaluations_per_step_and_norm_groups():
    assert [evaluations_per_step(m) for m in ("euler", "midpoint", "rk4")] == [1, 2, 4]
    # Chen et al.: 32 groups over 64 channels; never one channel per group.
    assert [norm_groups_for(32, c) for c in (64, 32, 126, 8, 1)] == [32, 16, 1, 4, 1]


@tf_only
def test_layer_contract_config_tf_data_and_xla():
    import tensorflow as tf

    block = ODEBlock(steps=2, method="midpoint", filters=6, norm_groups=2, name="ode")
    clone = ODEBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()

    x = np.random.default_rng(5).normal(size=(4, 6, 6, 4)).astype("float32")
    expected = keras.ops.convert_to_numpy(block(x))
    mapped = next(iter(tf.data.Dataset.from_tensor_slices(x).batch(4).map(block)))
    np.testing.assert_allclose(mapped.numpy(), expected, rtol=1e-5, atol=1e-5)

    inputs = keras.Input((6, 6, 4))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(block(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse", jit_compile=True)
    assert np.isfinite(float(model.train_on_batch(x, np.zeros((4, 2), "float32"))))
