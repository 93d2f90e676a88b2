"""recovery.application"""
