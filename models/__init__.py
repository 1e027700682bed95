"""The paper's networks (embedder, generator, projection discriminator), configs and losses."""
