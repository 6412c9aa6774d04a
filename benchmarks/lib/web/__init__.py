"""A Django site for the request-path benchmark: the project's settings, plus three bench views."""
