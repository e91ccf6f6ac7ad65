"""Sign in: the sign-in view of ui.signin (local accounts, the first administrator, or OIDC)."""

from ui import signin

signin.render()
