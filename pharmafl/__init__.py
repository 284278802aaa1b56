"""pharmafl: federated multi-task drug-discovery modelling for competing pharma partners.

Partners prepare their data locally (``pharmafl.ingest`` → ``pharmafl.chem`` →
``pharmafl.data``), train a shared trunk with private heads (``pharmafl.model``), and exchange
only securely aggregated trunk updates (``pharmafl.secure``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
