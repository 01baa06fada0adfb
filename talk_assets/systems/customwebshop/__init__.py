"""Custom Webshop: a company's in-house webshop API (root /api, X-Api-Key), served by the customapi engine."""
