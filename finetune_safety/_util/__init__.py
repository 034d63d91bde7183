"""Private helpers every stage uses (locks, build-once, text files, output paths, threads,
shipped resources, progress lines, registries). Import the module you need; nothing here is
public API."""

__all__: list[str] = []
