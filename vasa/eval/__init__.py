"""Measurement: real pretrained detectors (MediaPipe, dlib) and the paper's metrics."""
