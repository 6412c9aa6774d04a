"""`manage.py demo_data`: a few open citizen projects (and optionally a demo member) for a fresh stack.

Idempotent: projects are keyed by slug, the member by username; a second run creates nothing.
Tested by tests/test_demo_data.py.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from app.models.projects import Project

DEMO_PROJECTS = [
    ("demo-community-garden", "Community garden", "Turn the empty lot on Rue des Lilas into a shared vegetable garden."),
    ("demo-repair-cafe", "Repair café", "A monthly evening where neighbours mend bikes, lamps and clothes together."),
    ("demo-solar-school", "Solar panels for the school", "Cover the primary school's roof and teach the children how it works."),
]


class Command(BaseCommand):
    help = "Create a few open demo projects (and, with --member NAME:PASSWORD, an active demo member). Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--member", default="", help="also create this active member, as NAME:PASSWORD")

    def handle(self, *args: Any, **options: Any) -> None:
        created = 0
        for slug, title, description in DEMO_PROJECTS:
            _, new = Project.objects.get_or_create(slug=slug, defaults={"title": title, "description": description, "status": Project.Status.OPEN})
            created += new
        self.stdout.write(f"demo projects: {created} created, {len(DEMO_PROJECTS) - created} already there")
        if options["member"]:
            name, _, password = options["member"].partition(":")
            users = get_user_model()
            if users.objects.filter(username=name).exists():
                self.stdout.write(f"demo member {name}: already there")
            else:
                users.objects.create_user(name, f"{name}@localhost", password or None, is_active=True)
                self.stdout.write(f"demo member {name}: created")
