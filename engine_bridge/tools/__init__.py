"""Developer tools of the engine bridge: toolchain install script, Unity .meta writer."""
