"""File formats: atomic writes, mp4 video with audio, corpus shards."""
