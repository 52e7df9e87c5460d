"""Rendering the score to audio: a SoundFont synthesizer, reverb and broadcast mastering."""
