"""Networks. Plain nn.Modules: they import nothing from s2ikit's data, training or evaluation code."""
