"""The library layer every command shares: file formats (checkpoints), network factories, inference, image
conversions, augmentations and retrieval math. Imports models/data/audio/tts below it, never a command."""
