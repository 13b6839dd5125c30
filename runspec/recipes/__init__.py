"""Bundled recipe runners: modules a rendered command starts with ``python -m``.

``runspec.recipes.target`` runs a ``[recipe] target = "package.module:function"`` recipe,
for example a Megatron-Bridge recipe function. Nothing heavy is imported here.
"""
