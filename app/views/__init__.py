"""Thin JSON views: parse, call a service, answer."""
