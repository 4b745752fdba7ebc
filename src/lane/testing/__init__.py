"""Public test doubles: test your runbooks the way lane tests itself.

- `ScriptedModel`: a model that answers from canned turns (`model: scripted:FILE`).
- `FakeHuman`: a person who decides every pending request by a policy you give.
- `ScriptedWorstCase`: a model that obeys every instruction it finds in tool output,
  to show that a project's lanes hold against injected instructions.
"""

from lane.models.scripted import ScriptedModel
from lane.testing.human import Answer, FakeHuman, approve, reject
from lane.testing.worst_case import ScriptedWorstCase

__all__ = ["Answer", "FakeHuman", "ScriptedModel", "ScriptedWorstCase", "approve", "reject"]
