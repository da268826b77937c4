"""Data files shipped with simclr_tf; see README.md here. Load with `simclr_tf.data.load_embedded`."""
