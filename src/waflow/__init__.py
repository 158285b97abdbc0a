"""waflow: a self-hostable runtime for WhatsApp Business bots and integrations."""

__version__ = "0.1.0"
