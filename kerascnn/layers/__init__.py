"""Custom Keras layers of kerascnn, each registered for serialization (package "kerascnn")."""

from kerascnn.layers.shortcut import ZeroPadShortcut, zero_pad_shortcut  # noqa: F401

# --- regularization and normalization (issue 3) ---

# --- augmentation (issue 4) ---
