"""Redis plumbing shared by every store and tool: client, key names, Lua scripts, the packed copy codec."""
