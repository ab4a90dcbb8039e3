"""Where the pack's settings come from: the token, the base URLs, preferences, and every path rule.

``settings`` reads the environment and the config file into one ``Settings``;
``paths`` owns where the journal and result store live.
"""
