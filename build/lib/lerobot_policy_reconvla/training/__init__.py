"""Training options the plugin adds: the 8-bit AdamW optimizer type and the VAE latent cache."""
