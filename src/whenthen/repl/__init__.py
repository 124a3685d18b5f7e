"""The interactive console."""
