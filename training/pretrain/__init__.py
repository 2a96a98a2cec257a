"""Pretraining of the embedded default model, nanoGPT-style, in readable stages.

corpus (permissively licensed code on this machine) -> tokenizer (byte-level BPE with the
repocomplete special tokens) -> data (FIM / repo-context / plain samples tokenized once into
uint16 memmaps) -> train (resumable loop) -> export (``repocomplete/assets/default-model``).
``repocomplete pretrain --config training/configs/default-model.toml`` runs every stage that
is not already done in the run directory, then trains (resuming when asked).
"""
