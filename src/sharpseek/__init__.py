"""sharpseek: a generative search instrument for solar magnetic active regions.

Generate SHARP-like radial-field patches from physical quantities, shift them along
physically meaningful latent directions, and use them as queries to find real SDO/HMI
SHARPs that look alike and share the physics.
"""

__version__ = "0.1.0"
