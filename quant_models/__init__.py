"""nomul quantized models: quantizers, importers and bundled example networks."""
