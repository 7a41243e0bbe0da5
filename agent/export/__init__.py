"""``posture export``: findings in the formats other tools import (DefectDojo, OCSF)."""
