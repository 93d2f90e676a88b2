"""recovery.adapters"""
