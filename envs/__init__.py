"""Gymnasium text environments. `import envs` registers every id (BabyAI-Text-*, ScienceWorld-v0)."""
