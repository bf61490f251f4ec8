"""The team: members and roles, local accounts."""
