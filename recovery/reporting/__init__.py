"""recovery.reporting"""
