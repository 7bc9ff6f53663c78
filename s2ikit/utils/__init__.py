"""Small building blocks with no knowledge of s2ikit's data or models."""
