"""Entry points of embedgen: option parsing and graph assembly."""
