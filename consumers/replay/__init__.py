"""Replaying a retained match: highlights, music with foresight, and the files editors use."""
