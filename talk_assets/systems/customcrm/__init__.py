"""Custom CRM: a company's in-house CRM API (root /api/v1, bearer key), served by the customapi engine."""
