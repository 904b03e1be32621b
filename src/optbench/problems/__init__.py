"""Built-in problems, each a plugin module registered through `register_problems`."""
