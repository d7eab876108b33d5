"""Science on generated and real regions: latent directions, inversion, catalogues, realism,
measures of user files, model-quality measures and the figures of all of them."""
