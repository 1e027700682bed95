"""The live app: sources, landmark driving, the threaded loop, the generator runtimes and the sinks."""
