"""Writing data that must survive a crash: the VAE latent cache, worker processes that die with their parent."""
