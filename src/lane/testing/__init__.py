"""Public test doubles: test your runbooks the way lane tests itself.

- `ScriptedModel`: a model that answers from canned turns (`model: scripted:FILE`).
- `FakeHuman`: a person who decides every pending request by a policy you give.
"""

from lane.models.scripted import ScriptedModel
from lane.testing.human import Answer, FakeHuman, approve, reject

__all__ = ["Answer", "FakeHuman", "ScriptedModel", "approve", "reject"]
