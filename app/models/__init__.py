from .accounts import PendingAccount
from .images import UploadedImage
from .impact import ImpactDashboard
from .mail import MemberPreferences, SentMail
from .projects import Contribution, Project

__all__ = [
    "Contribution",
    "ImpactDashboard",
    "MemberPreferences",
    "PendingAccount",
    "Project",
    "SentMail",
    "UploadedImage",
]
