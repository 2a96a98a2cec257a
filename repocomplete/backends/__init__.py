"""Model backends behind one protocol (:class:`repocomplete.backends.base.Backend`).

torch / transformers / peft are imported only inside backend modules, lazily.
"""
