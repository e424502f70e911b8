"""The generated talking-head corpus: speech synthesis, speech-driven animation, a 3D head renderer."""
