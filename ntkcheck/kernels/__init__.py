"""The NTK's kernels and Gram matrices, fast and exact, with a plain reference beside them.

Public surface:

* :func:`kappa0`, :func:`kappa1`, :func:`h_infinity`, :func:`lambda0` (``arccos``): the
  infinite-width kernel and its smallest eigenvalue with a floating-point error bound;
* :func:`gram_matrix` (``gram``): H(W) = (X Xᵀ) ∘ (SᵀS)/m chunked over neurons, with exact
  signs and exact counts; :func:`activation_counts` is SᵀS alone;
* :func:`certify` → :class:`Certificate`, :func:`critical_radii` (``certificate``): Lemma 2.3's
  certified bound over a ball of radius R, and the largest R a threshold still certifies
  (:func:`band_guess`: how far the certificate's pass should gather entries for it;
  :class:`InputGrams`: what they and the attack take from the inputs alone, formed once per run);
* :func:`attack` → :class:`Attack` (``attack``): an explicit W in the ball, evaluated exactly;
* ``reference``: the same quantities from their definitions, one neuron and one entry at a
  time in float64 — what the fast code is tested against.
"""
from .arccos import Lambda0, eigenvalue_tolerance, h_infinity, kappa0, kappa1, lambda0
from .attack import Attack, attack
from .certificate import Certificate, band_guess, certify, critical_radii, critical_radius
from .gram import InputGrams, activation_counts, gram_matrix

__all__ = ["Attack", "Certificate", "InputGrams", "Lambda0", "activation_counts", "attack", "band_guess", "certify", "critical_radii",
           "critical_radius", "eigenvalue_tolerance", "gram_matrix", "h_infinity", "kappa0", "kappa1", "lambda0"]
