"""`parley chat`: the terminal adapter on the same core as the messengers."""
