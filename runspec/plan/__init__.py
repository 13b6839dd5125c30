"""Manifest → plan: resolve, expand, render, diff. Every function here is pure."""
